"""Ready-made labs.

- ``demo``: the quick preset on digits (originals, three forget sets, oracles, do-nothing)
- ``cifar10``: the CIFAR-10 + ResNet-9 preset, with a measured cost estimate first

Uses ``evaluation`` and below; never imports streamlit.
"""
