"""What the four ROS 2 nodes share, without rclpy: message conversion, parameters, health, QoS."""
