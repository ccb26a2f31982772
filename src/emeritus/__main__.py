from emeritus.cli import main

main()
