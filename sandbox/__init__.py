"""The local sandbox: the whole product on this machine, with demo customers or real accounts."""
