"""Azure Blob storage (`tusserver[azure]`): the store (`store`), its block writer (`blocks`), the pure
offset-to-block arithmetic (`layout`), errors, deadlines and bodies (`calls`), credentials and source SAS
(`auth`), the options (`options`), concatenation (`join`), tails remembered and deleted later (`tails`) and
the sweep of what no record names (`sweep`)."""
