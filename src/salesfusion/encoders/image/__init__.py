"""Image encoders: resnet18/50/101/152, efficientnet_lite0, color_texture (and clip); each
module registers its encoders when the encoder registry asks for them (``components.ENCODERS``)."""
