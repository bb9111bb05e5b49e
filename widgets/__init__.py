"""Qt widgets and pyqtgraph views: render application state, emit intents, own no domain data."""
