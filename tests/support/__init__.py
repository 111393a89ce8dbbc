"""What the tests share: process and socket helpers, peers, time bounds (no test here)."""
