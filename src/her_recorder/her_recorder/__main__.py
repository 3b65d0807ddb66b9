"""``python -m her_recorder bag {info,check,recover} PATH...``"""

import sys

from her_recorder.cli import main

sys.exit(main())
