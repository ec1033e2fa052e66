"""What runs a Kedro session of this project: hooks, tracking, console, worker processes
and the Kedro datasets of our own. Library code (data, models, training, evaluation)
never imports from here."""
