import sys

from capillary.cli import main

sys.exit(main())
