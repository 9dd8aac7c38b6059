"""nets: the model zoo (ResNet, DenseNet and the CNNs they are compared with), built only from
minidl's public API."""
