<?php
// PHP's own SoapClient against a ladon-tasks service, as a PHP user would write it.
//
//   php soap_client.php WSDL_URL STYLE TEXT
//
// STYLE is "rpc" (Ladon's soap11, RPC/encoded: arguments positional, the value
// returned as it is) or "document" (soap/soapdocumentliteral: one array of named
// arguments, the value in ->result). Runs ProbeService.echo end to end and prints
// what PHP saw as JSON, so PHP's own types (float or string, "" or null) show.

[$script, $wsdl, $style, $text] = $argv;
$client = new SoapClient($wsdl, ['cache_wsdl' => WSDL_CACHE_NONE, 'exceptions' => true]);

function call($client, $style, $method, $named) {
    if ($style === 'document') {
        return $client->__soapCall($method, [$named])->result;
    }
    return $client->__soapCall($method, array_values($named));
}

$seen = [];
$started = call($client, $style, 'echo', ['text' => $text]);
$id = $started->{'task-id'};
$seen['start'] = $started;
$seen['wait'] = call($client, $style, 'echo_wait', ['task-id' => $id, 'seconds' => 20]);
$seen['progress'] = call($client, $style, 'echo_progress', ['task-id' => $id]);
$seen['result'] = call($client, $style, 'echo_result', ['task-id' => $id]);
$seen['wait_result'] = call($client, $style, 'echo_wait_result', ['task-id' => $id, 'seconds' => 5]);
$seen['cancel'] = call($client, $style, 'echo_cancel', ['task-id' => $id]);
try {
    call($client, $style, 'echo_result', ['task-id' => str_repeat('0', 32)]);
    $seen['fault'] = null;
} catch (SoapFault $fault) {
    $seen['fault'] = ['code' => $fault->faultcode, 'string' => $fault->faultstring];
}
echo json_encode($seen, JSON_PRESERVE_ZERO_FRACTION | JSON_PRETTY_PRINT), "\n";
