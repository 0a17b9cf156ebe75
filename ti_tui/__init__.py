"""ti-tui: the terminal front end (Textual app, Rich dashboard, process runner) of the trainer."""
