"""Ladon's virtualisation-center example: cloning an instance takes a while, so
``cloneInstance`` is a task that returns a LadonType when it is done."""

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


class InstanceService(object):
    """Clone virtual machine instances in the background."""

    @ladonize(PORTABLE_STRING, PORTABLE_STRING, rtype=InstanceInformation, tasktype=True)
    def cloneInstance(self, instance_id, new_instance_name, **kw):
        """Create new_instance_name as an exact copy of instance_id."""
        steps = ['creating the destination', 'copying disk images', 'starting the clone']
        for number, step in enumerate(steps):
            kw['update_progress'](number / len(steps), step)
            time.sleep(0.4)
        response = InstanceInformation()
        response.instance_id = 'vm-%s' % new_instance_name
        response.name = new_instance_name
        response.source_id = instance_id
        response.disks = ['%s-disk0.qcow2' % new_instance_name]
        response.running = False
        return response
