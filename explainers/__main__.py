"""`python -m explainers`."""

from explainers.cli import main

raise SystemExit(main())
