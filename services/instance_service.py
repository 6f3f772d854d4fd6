"""Ladon's virtualisation-center example: cloning an instance takes a while, so
``cloneInstance`` is a task that returns a LadonType when it is done.

Its body is made of steps (``kw['step']``): each step's result is recorded with the
task when it succeeds, and a rerun - the next attempt after a dead worker or web
process, a retry after an exception, or an operator's ``ladon-tasks retry`` - gets it
back without running the step again. A clone that failed while registering does not
copy its disks twice."""

import time

from ladon.compat import PORTABLE_STRING
from ladon.types.ladontype import LadonType

from ladon_tasks import ladonize


class InstanceInformation(LadonType):
    instance_id = {'type': PORTABLE_STRING, 'doc': 'id of the new instance'}
    name = {'type': PORTABLE_STRING, 'doc': 'name given to the new instance'}
    source_id = {'type': PORTABLE_STRING, 'doc': 'the instance it was cloned from'}
    disks = [PORTABLE_STRING]
    running = {'type': bool, 'doc': 'whether the clone was started'}


# What a real service would ask its hypervisor; here each takes a moment.

def list_disks(instance_id):
    time.sleep(0.4)
    return ['disk0']


def copy_disk(disk, new_instance_name):
    time.sleep(0.4)
    return '%s-%s.qcow2' % (new_instance_name, disk)


def register_clone(instance_id, new_instance_name, disks):
    time.sleep(0.4)
    response = InstanceInformation()
    response.instance_id = 'vm-%s' % new_instance_name
    response.name = new_instance_name
    response.source_id = instance_id
    response.disks = disks
    response.running = False
    return response


class InstanceService(object):
    """Clone virtual machine instances in the background."""

    @ladonize(PORTABLE_STRING, PORTABLE_STRING, rtype=InstanceInformation, tasktype=dict(retries=2))
    def cloneInstance(self, instance_id, new_instance_name, **kw):
        """Create new_instance_name as an exact copy of instance_id."""
        step, progress = kw['step'], kw['update_progress']
        progress(0.0, 'creating the destination')
        disks = step('list disks', list_disks, instance_id)
        progress(1 / 3.0, 'copying disk images')
        copies = [step('copy %s' % disk, copy_disk, disk, new_instance_name) for disk in disks]
        progress(2 / 3.0, 'starting the clone')
        return step('register', register_clone, instance_id, new_instance_name, copies, rtype=InstanceInformation)
