"""The ROS 2 layer: the ``siammask_tracker`` node and the ``select_target`` tool.

``conversions`` and ``params`` import message classes only; ``node`` and
``select_target`` import rclpy.
"""
