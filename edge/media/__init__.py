"""Pictures in: image files read safely, their headers, video files, cameras and streams."""
