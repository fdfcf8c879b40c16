"""What people look at and listen to: traversals, rollouts, the HTML report, the latent explorer, speech
synthesis and its measures. Views read trained runs through ``vaekit.run.io``; nothing below imports them."""
