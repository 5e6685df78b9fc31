"""What the transformer is conditioned on besides the canvas: the target-oriented prompt
(``prompt.py``), the HunyuanVideo 1.5 text encoders (``text_encoder.py``), the SigLIP reference-image
encoder (``image_encoder.py``), their shared loading steps (``encoder_files.py``) and cache, the
``Conditioning`` they produce (``types.py``) and the converter from ComfyUI's CONDITIONING."""
