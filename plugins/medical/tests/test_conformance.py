from domainfm.testing import ConformanceSuite


class TestConformance(ConformanceSuite):
    plugin = "medical"
