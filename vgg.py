"""VGG-16 for CIFAR-10, as given in the assignment handout.

Students use this file as it is ("no need for any modifications"). The module
tree must match the handout exactly so that ``vgg16_epoch250.ckpt`` loads with
``strict=True``: 35 state_dict keys, 14,983,498 parameters.
"""
import math

import torch.nn as nn

# Numbers are conv output channels; 'M' is a 2x2 max-pool with stride 2.
VGG16_CFG = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M']


def make_layers(cfg, batch_norm=False):
    """Build the feature extractor: 3x3 convs (padding 1) with ReLU, and max-pools."""
    layers = []
    in_channels = 3
    for v in cfg:
        if v == 'M':
            layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
        else:
            conv2d = nn.Conv2d(in_channels, v, kernel_size=3, padding=1)
            if batch_norm:
                layers += [conv2d, nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            else:
                layers += [conv2d, nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, features):
        super(VGG, self).__init__()
        self.features = features
        # After five 2x2 pools a 32x32 image is 512x1x1, hence Linear(512, ...).
        self.classifier = nn.Sequential(
            nn.Dropout(),
            nn.Linear(512, 512),
            nn.BatchNorm1d(512),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(512, 10),
        )
        # He initialisation of the convs: N(0, sqrt(2 / n)), n = k * k * out_channels.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2. / n))
                m.bias.data.zero_()

    def forward(self, x):
        x = self.features(x)
        x = x.view(x.size(0), -1)
        x = self.classifier(x)
        return x


def vgg16():
    """VGG-16 (configuration D) without batch norm in the features."""
    return VGG(make_layers(VGG16_CFG))
