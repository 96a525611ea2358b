"""grenade in Zuul: the job's variables and inventory as a grenade config
(`jobconfig`), and a check of `zuul.d/` with Zuul's own loader (`validate`)."""
