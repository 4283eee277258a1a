"""SiamMask tracking for ROS 2: a ROS-free core (model, tracker, io) and a thin node.

The generated interface modules ``siammask_ros.msg`` and ``siammask_ros.srv`` are built
by rosidl into the install tree, next to this package's installed sources. When the
sources are imported from a checkout instead (tests, development), ``extend_path`` lets
those two subpackages still be found in the installed copy.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = "0.1.0"
