"""The facades Tactful exposes (tf.profiles, tf.consent, tf.rights, ...), one module per area."""
