import sys

from firegrid.cli import main

sys.exit(main())
