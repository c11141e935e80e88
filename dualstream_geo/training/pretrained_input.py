"""The input of a pretrained TorchGeo vision encoder, matched to the training data once.

The model standardises every band with the training data's statistics; TorchGeo's weights
were trained on the raw values in their own normalisation (SSL4EO-L: 8-bit values / 255;
Satlas Landsat: (x - 4000) / 16320). :func:`match_pretrained_input` sets the encoder's
input so that its stem sees the latter, and warns when the data's values are not in the
weights' units (then no rescaling makes them the pretraining's inputs).
"""

from __future__ import annotations

from lightning.pytorch.utilities import rank_zero_warn

from ..data.spec import InputSpec
from ..models import DualStreamDFormer
from ..models.backbones import TorchGeoEncoder
from ..models.pretrained import scaling_warning


def match_pretrained_input(model: DualStreamDFormer, spec: InputSpec) -> bool:
    """Match a TorchGeo encoder's input to ``spec``'s band statistics; warn on other units.

    Args:
        model: the model; nothing happens unless its vision encoder started from TorchGeo
            weights with a known normalisation.
        spec: the data's input spec, with the statistics of the training data (and the
            ``dataset`` normalisation: the original's fixed scaling is left as it is).

    Returns:
        True when the input was matched.
    """
    encoder = model.vision_encoder
    stats = spec.stats
    if not isinstance(encoder, TorchGeoEncoder) or stats is None:
        return False
    if spec.normalization != "dataset" or not bool((encoder.weights_std > 0).any()):
        return False
    image = stats.image
    encoder.match_data(image.mean, image.std)
    matched = [i for i in range(len(image.bands)) if encoder.weights_std[i] > 0]
    message = scaling_warning(
        encoder.weights_name,
        [image.bands[i] for i in matched],
        [float(encoder.weights_mean[i]) for i in matched],
        [float(encoder.weights_std[i]) for i in matched],
        [image.mean[i] for i in matched],
        [image.max[i] for i in matched],
    )
    if message:
        rank_zero_warn(message, stacklevel=1)
    return True
