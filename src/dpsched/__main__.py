from dpsched.cli.app import main

main()
