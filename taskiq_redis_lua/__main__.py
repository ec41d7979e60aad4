"""``python -m taskiq_redis_lua``: the same as ``taskiq redis``."""

import sys

from taskiq_redis_lua.cli import main

sys.exit(main())
