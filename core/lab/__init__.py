"""The knowledge lab: a made-up world, a small reader student pretrained on it, and (later) a lab teacher.

The lab measures DocTune's method on a CPU: new entities of the world play the
user's documents; the reader can read a passage in its context but cannot know
the new entities' facts until it is tuned on them. See ``world`` for the world
and its question templates, ``reader`` for the student.
"""
