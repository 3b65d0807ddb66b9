"""``python -m her_recorder.audit BAGS... --out DIR``: the audit without the ``her`` command."""

import sys

from her_recorder.audit.cli import main

sys.exit(main())
