"""The VAE of the embedding task (scopenet.nn.vae): encoding normalisation, losses, shapes."""
import numpy as np
import pytest
import torch

from scopenet.nn.vae import VAE, EncodingNorm, encoding_loss, kl_loss, sobel


def test_encoding_norm_uses_batch_statistics_while_training():
    torch.manual_seed(0)
    en = EncodingNorm(latent=4, lambda_mu=2.5).train()
    mu = 3.0 + 7.0 * torch.randn(256, 4)
    sigma = 0.2 + torch.rand(256, 4)
    m, s = en(mu, sigma)
    # eq. 6: zero mean, standard deviation lambda_mu per dimension
    np.testing.assert_allclose(m.mean(0).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(m.std(0, unbiased=False).numpy(), 2.5, rtol=1e-4)
    # eq. 7: sigma divided by twice its batch standard deviation, the mean not removed
    np.testing.assert_allclose(s.numpy(), (sigma / (2 * sigma.std(0, unbiased=False))).numpy(), rtol=1e-4)
    assert (s >= 0).all()
    # the running statistics moved towards the batch's
    assert (en.running_mean > 0).all() and (en.running_var > 1).all()


def test_encoding_norm_running_statistics_at_inference():
    en = EncodingNorm(latent=3, lambda_mu=2.0).eval()
    en.running_mean.copy_(torch.tensor([1.0, 2.0, 3.0]))
    en.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    en.running_sigma_var.copy_(torch.tensor([1.0, 4.0, 1.0]))
    m, s = en(torch.tensor([[3.0, 2.0, 3.5]]), torch.tensor([[1.0, 1.0, 0.5]]))
    np.testing.assert_allclose(m.numpy(), [[2.0, 0.0, 2.0]], rtol=1e-4)
    np.testing.assert_allclose(s.numpy(), [[0.5, 0.25, 0.25]], rtol=1e-4)


@pytest.mark.parametrize("norm", ["encoding", "kl"])
def test_code_of_an_image_does_not_depend_on_its_batch(norm):
    torch.manual_seed(0)
    net = VAE(size=32, latent=8, widths=[4, 8], hidden=16, norm=norm).train()
    with torch.no_grad():
        for _ in range(3):
            net.reconstruct(torch.rand(8, 1, 32, 32))
    net.eval()
    x = torch.rand(6, 1, 32, 32)
    with torch.no_grad():
        mu_b, sig_b = net.encode(x)
        for i in range(6):
            mu_1, sig_1 = net.encode(x[i:i + 1])
            torch.testing.assert_close(mu_1[0], mu_b[i], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(sig_1[0], sig_b[i], rtol=1e-5, atol=1e-5)
        # another batch around the same image leaves its code unchanged
        other = torch.cat([x[:1], torch.rand(5, 1, 32, 32)])
        torch.testing.assert_close(net.encode(other)[0][0], mu_b[0], rtol=1e-5, atol=1e-5)


def test_shapes_and_forward():
    net = VAE(size=32, latent=8, widths=[4, 8], hidden=16).eval()
    x = torch.rand(3, 1, 32, 32)
    recon, mu, sigma = net.reconstruct(x)
    assert recon.shape == x.shape and mu.shape == sigma.shape == (3, 8)
    assert torch.equal(net(x), recon)  # eval: z = mu, deterministic
    assert net.decode(mu).shape == (3, 1, 32, 32)
    with pytest.raises(ValueError, match="divisible"):
        VAE(size=30, widths=[4, 8])
    with pytest.raises(ValueError, match="norm"):
        VAE(norm="batch")


def test_sobel_of_a_ramp():
    x = torch.arange(5.0).repeat(5, 1)[None, None]  # value = column index
    s = sobel(x)
    assert s.shape == (1, 2, 3, 3)
    np.testing.assert_allclose(s[0, 0].numpy(), -8.0)  # horizontal derivative: [1,0,-1] x [1,2,1]
    np.testing.assert_allclose(s[0, 1].numpy(), 0.0)


def test_losses_reference_values():
    x = torch.rand(2, 1, 8, 8)
    ones = torch.ones(2, 4)
    loss, parts = encoding_loss(x, x, ones)
    assert float(loss) == 0.0 and parts["mse"] == 0.0
    loss, _ = encoding_loss(x + 0.1, x, 2 * ones, lambda_mse=50, lambda_sobel=50)
    # a constant offset has no gradient: 50 * 0.01 + 0 + MSE(2, 1) = 1.5
    assert float(loss) == pytest.approx(1.5, rel=1e-5)
    loss, parts = kl_loss(x, x, torch.zeros(2, 4), ones)
    assert float(loss) == pytest.approx(0.0, abs=1e-7)
    loss, parts = kl_loss(x, x, ones, ones)  # KL = (1 + 1 - 0 - 1) / 2 per dimension
    assert parts["kl"] == pytest.approx(0.5)
