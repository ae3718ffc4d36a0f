from mirror_builder.cli import main

raise SystemExit(main())
