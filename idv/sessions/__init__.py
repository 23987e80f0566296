"""Capture-session events (pointer, touch and key events) and the features every consumer of
them computes the same way: training, evaluation, the hand-crafted baseline and serving.
numpy only, so a behaviour bundle scores a session without torch."""
