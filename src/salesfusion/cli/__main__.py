from salesfusion.cli import main

main()
