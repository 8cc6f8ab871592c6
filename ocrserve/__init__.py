"""What the API and the workers share as processes: the settings, logging, and the `ocrserve` command line."""
