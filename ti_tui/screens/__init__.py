"""The screens of the Textual app: the form, the live training dashboard, dialogs."""
