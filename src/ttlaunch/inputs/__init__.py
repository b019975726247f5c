"""What the user wrote (experiment summary, configs, payload), read and checked in the launching process."""
