"""HTTP routes: thin handlers over api.submission, the job store and the views."""
