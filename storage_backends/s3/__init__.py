"""S3 storage (`tusserver[s3]`): the store (`store`), its part writer (`parts`), the pure offset-to-part
arithmetic (`layout`), errors and deadlines (`calls`) and the sweep of what no record names (`sweep`)."""
