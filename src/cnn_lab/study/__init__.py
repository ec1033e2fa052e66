"""The study kit: the frame every study is built from (parameters, variants and seeds,
training one variant, summary, report). A study declares what differs."""
