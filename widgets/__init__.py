"""greenroom.widgets: ipywidgets Forms that call server functions with a loading indicator."""
