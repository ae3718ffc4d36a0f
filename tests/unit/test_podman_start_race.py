"""A container whose command ends before podman 4.3 has read its cgroup (sandbox/podman.py's
started_despite): podman answers its start, or the inspect right after, with a 500 "no such
process" though the command ran; the run goes on and reads its end, instead of failing."""

from mirror_builder.sandbox.podman import started_despite


class APIError(Exception):
    pass


RACE = APIError("500 Server Error: Internal Server Error (read /proc/9749/cgroup: no such process)")


class Container:
    """Inspected: raises the given errors in turn, then says it is in state."""

    def __init__(self, state, errors=()):
        self.errors = list(errors)
        self.state = state
        self.attrs = {}
        self.reloads = 0

    def reload(self):
        self.reloads += 1
        if self.errors:
            raise self.errors.pop(0)
        self.attrs = {"State": {"Status": self.state}}


def test_a_command_that_ended_before_podman_looked_counts_as_started():
    container = Container("exited", errors=[RACE])

    assert started_despite(container, RACE, APIError, pause=0)
    assert container.reloads == 2


def test_any_other_error_is_a_failed_start():
    other = APIError("500 Server Error: crun: executable file `nope` not found")

    assert not started_despite(Container("exited"), other, APIError, pause=0)


def test_a_container_that_never_ran_is_a_failed_start():
    assert not started_despite(Container("created"), RACE, APIError, pause=0)


def test_podman_is_asked_only_so_many_times():
    container = Container("exited", errors=[RACE] * 20)

    assert not started_despite(container, RACE, APIError, tries=3, pause=0)
    assert container.reloads == 3
