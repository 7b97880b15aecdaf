from live_server.cli import main

raise SystemExit(main())
