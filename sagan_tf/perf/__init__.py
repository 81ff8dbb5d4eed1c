"""Speed: the train/sample benchmark and the convolution-rate probe behind the im2col choice."""
