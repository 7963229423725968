import sys

from fundiff.cli import main

sys.exit(main())
