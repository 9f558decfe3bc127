"""Recognition over time: the frame loop, tracks and appearances, stats, drawing, display."""
