"""pip installation of the ROS-free core (model, tracker, io, offline runner).

On a robot the package is built by colcon through CMakeLists.txt (build type
ament_cmake in package.xml), which also generates msg/ and srv/; colcon does not use
this file. `pip install .` gives the same Python package without ROS interfaces.
"""

from setuptools import find_packages, setup

setup(
    name="siammask_ros",
    version="0.1.0",
    description="SiamMask tracking and segmentation: ROS-free core and offline runner",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["siammask_ros", "siammask_ros.*"]),
    package_data={"siammask_ros": ["weights/*.pth", "weights/*.md"]},
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "torch>=2.1",
        "tqdm>=4.60",
    ],
    extras_require={
        "bag": ["rosbags>=0.11"],  # rosbag2 input/output of siammask-track
        "onnx": ["onnxruntime>=1.17", "onnx>=1.15"],  # siammask-export, --backend onnxruntime
    },
    entry_points={
        "console_scripts": [
            "siammask-track = siammask_ros.cli.track:main",
            "siammask-bench = siammask_ros.cli.bench:main",
            "siammask-export = siammask_ros.cli.export:main",
            "siammask-gpu-checks = siammask_ros.cli.gpu_checks:main",
        ],
    },
)
