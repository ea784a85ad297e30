import sys

from raysys.synthesise.cli import main

sys.exit(main())
