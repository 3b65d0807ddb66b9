"""HER-ROS episodes as rosbag2 (MCAP): crash-safe recorder, recovery and validating reader."""
