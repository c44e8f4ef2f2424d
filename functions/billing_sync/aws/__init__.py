"""AWS adapters: raw archive (S3), billing bus (EventBridge), exception queue (SQS), and SDK error translation."""
