"""What runs where samples arrive: the intake handler (Lambda), its local runner and its packaging."""
