"""Operations on images and tensors without learned weights, shared by every layer above."""
