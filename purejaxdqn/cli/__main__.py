"""`python -m purejaxdqn.cli ...`: the `purejaxdqn` command."""

import sys

from purejaxdqn.cli import main

sys.exit(main())
