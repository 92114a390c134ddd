from salesfusion.cli import app

app()
