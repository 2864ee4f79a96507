from loyalty.cli import app

app(prog_name="loyalty")
