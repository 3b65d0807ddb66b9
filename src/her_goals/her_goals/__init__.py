"""Goal contract of HER-ROS: goal spaces, the one reward function, samplers, extractors."""

from her_goals.errors import (
    ConfigError,
    GoalError,
    GoalShapeError,
    HerError,
    NonFiniteGoalError,
    StateError,
    UnknownGoalSpaceError,
)
from her_goals.extractors import (
    AchievedGoalExtractor,
    EndEffectorPositionExtractor,
    JointAngleExtractor,
    ObjectPositionExtractor,
    RobotState,
)
from her_goals.sampling import GoalRegion, GoalSampler, cell_split
from her_goals.spaces import GOAL_SPACES, GoalSpace, get_goal_space, register_goal_space

__all__ = [
    "GOAL_SPACES",
    "AchievedGoalExtractor",
    "ConfigError",
    "EndEffectorPositionExtractor",
    "GoalError",
    "GoalRegion",
    "GoalSampler",
    "GoalShapeError",
    "GoalSpace",
    "HerError",
    "JointAngleExtractor",
    "NonFiniteGoalError",
    "ObjectPositionExtractor",
    "RobotState",
    "StateError",
    "UnknownGoalSpaceError",
    "cell_split",
    "get_goal_space",
    "register_goal_space",
]
